-- One row per (vacancy, key skill) of the newest detail document: silver vacancy_skills, renamed and cast.
select
    cast(vacancy_id as varchar) as vacancy_id,
    cast(skill as varchar) as skill_name,
    cast(published_at as timestamptz) as published_at,
    -- First day of the publication month, in the profile's time zone (UTC by default).
    cast(date_trunc('month', cast(published_at as timestamptz)) as date) as published_month,
    cast(_bronze_key as varchar) as bronze_key,
    cast(_bronze_row as bigint) as bronze_row,
    cast(_ingested_at as timestamptz) as ingested_at
from {{ source('silver', 'vacancy_skills') }}
