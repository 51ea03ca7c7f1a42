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
    coalesce(status != 'failed' and row_number() over (
        partition by source_name, bronze_key, status = 'failed'
        order by bronze_modified_at desc nulls last, finished_at desc
    ) = 1, false) as is_current
from loads
order by finished_at, source_name, bronze_key
