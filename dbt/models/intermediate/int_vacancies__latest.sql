-- One row per vacancy: the version from the newest bronze file (ties: the later key, then row).
with

vacancies as (
    select * from {{ ref('stg_vacancies') }}
),

ranked as (
    select
        *,
        {{ newest_version('vacancy_id') }} as version_rank
    from vacancies
)

select
    vacancy_id,
    vacancy_name,
    area_id,
    area_name,
    salary_from,
    salary_to,
    salary_currency,
    is_salary_gross,
    employer_id,
    employer_name,
    schedule_id,
    experience_id,
    professional_role_ids,
    professional_role_names,
    published_at,
    cast(date_trunc('month', published_at) as date) as published_month,
    bronze_key,
    ingested_at
from ranked
where version_rank = 1
