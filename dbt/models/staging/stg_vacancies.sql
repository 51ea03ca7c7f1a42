-- One row per vacancy (its newest version): silver vacancies, renamed and cast.
select
    cast(vacancy_id as varchar) as vacancy_id,
    cast(vacancy_name as varchar) as vacancy_name,
    cast(area_id as varchar) as area_id,
    cast(area_name as varchar) as area_name,
    cast(salary_from as double) as salary_from,
    cast(salary_to as double) as salary_to,
    cast(salary_currency as varchar) as salary_currency,
    cast(salary_gross as boolean) as is_salary_gross,
    cast(employer_id as varchar) as employer_id,
    cast(employer_name as varchar) as employer_name,
    cast(schedule_id as varchar) as schedule_id,
    cast(experience_id as varchar) as experience_id,
    cast(professional_role_ids as varchar[]) as professional_role_ids,
    cast(professional_role_names as varchar[]) as professional_role_names,
    cast(published_at as timestamptz) as published_at,
    -- First day of the publication month, in the profile's time zone (UTC by default).
    cast(date_trunc('month', cast(published_at as timestamptz)) as date) as published_month,
    cast(_bronze_key as varchar) as bronze_key,
    cast(_bronze_row as bigint) as bronze_row,
    cast(_ingested_at as timestamptz) as ingested_at
from {{ source('silver', 'vacancies') }}
