-- One row per (date, currency): the rate from the newest bronze file.
with

rates as (
    select * from {{ ref('stg_currency_rates') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by rate_date, currency_code
            order by ingested_at desc, bronze_key desc, bronze_row desc
        ) as version_rank
    from rates
)

select
    rate_date,
    currency_code,
    rub_per_unit
from ranked
where version_rank = 1
