-- One row per processed bronze object version (Snowpipe's COPY_HISTORY, for dashboards).
with

loads as (
    select * from {{ ref('stg_load_history') }}
)

select
    source_name,
    bronze_key,
    bronze_etag,
    status,
    rows_in,
    rows_out,
    rows_quarantined,
    rows_deduplicated,
    reason,
    started_at,
    finished_at,
    load_seconds,
    bronze_size_bytes,
    bronze_modified_at,
    contract_version,
    {{ ledger_newest('source_name', 'bronze_key', 'bronze_modified_at', 'finished_at') }} as is_current
from loads
order by finished_at, source_name, bronze_key
