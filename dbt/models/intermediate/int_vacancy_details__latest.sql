-- One row per vacancy with details: the version from the newest bronze file.
with

details as (
    select * from {{ ref('stg_vacancy_details') }}
),

ranked as (
    select
        *,
        {{ newest_version('vacancy_id') }} as version_rank
    from details
)

select
    vacancy_id,
    vacancy_name,
    area_id,
    employer_id,
    experience_id,
    employment_id,
    published_at,
    cast(date_trunc('month', published_at) as date) as published_month,
    bronze_key,
    ingested_at
from ranked
where version_rank = 1
