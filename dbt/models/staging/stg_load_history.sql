-- One row per processed bronze object version: silver's load history, renamed and cast.
select
    cast(source as varchar) as source_name,
    cast(bronze_key as varchar) as bronze_key,
    cast(bronze_etag as varchar) as bronze_etag,
    cast(bronze_size as bigint) as bronze_size_bytes,
    cast(bronze_modified as timestamptz) as bronze_modified_at,
    cast(status as varchar) as status,
    cast(contract_version as varchar) as contract_version,
    cast(rows_in as bigint) as rows_in,
    cast(rows_out as bigint) as rows_out,
    cast(rows_quarantined as bigint) as rows_quarantined,
    cast(rows_deduplicated as bigint) as rows_deduplicated,
    cast(reason as varchar) as reason,
    cast(started_at as timestamptz) as started_at,
    cast(finished_at as timestamptz) as finished_at,
    cast(seconds as double) as load_seconds
from {{ source('silver', 'load_history') }}
