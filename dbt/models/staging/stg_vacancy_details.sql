-- One row per vacancy detail document (its newest version): silver vacancy_details, renamed and cast.
select
    cast(vacancy_id as varchar) as vacancy_id,
    cast(vacancy_name as varchar) as vacancy_name,
    cast(area_id as varchar) as area_id,
    cast(employer_id as varchar) as employer_id,
    cast(experience_id as varchar) as experience_id,
    cast(employment_id as varchar) as employment_id,
    cast(key_skills as varchar[]) as key_skills,
    cast(published_at as timestamptz) as published_at,
    -- First day of the publication month, in the profile's time zone (UTC by default).
    cast(date_trunc('month', cast(published_at as timestamptz)) as date) as published_month,
    cast(_bronze_key as varchar) as bronze_key,
    cast(_bronze_row as bigint) as bronze_row,
    cast(_ingested_at as timestamptz) as ingested_at
from {{ source('silver', 'vacancy_details') }}
