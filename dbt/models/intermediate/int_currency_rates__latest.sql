-- One row per (date, currency): the rate from the newest bronze file.
with

rates as (
    select * from {{ ref('stg_currency_rates') }}
),

ranked as (
    select
        *,
        {{ newest_version('rate_date, currency_code') }} as version_rank
    from rates
)

select
    rate_date,
    currency_code,
    rub_per_unit
from ranked
where version_rank = 1
