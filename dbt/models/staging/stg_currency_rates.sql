-- One row per (date, currency): silver currency_rates, renamed and cast.
select
    cast(rate_date as date) as rate_date,
    cast(currency as varchar) as currency_code,
    cast(rate as double) as rub_per_unit,
    cast(_bronze_key as varchar) as bronze_key,
    cast(_bronze_row as bigint) as bronze_row,
    cast(_ingested_at as timestamptz) as ingested_at
from {{ source('silver', 'currency_rates') }}
