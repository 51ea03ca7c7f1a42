-- One row per (vacancy, key skill) per bronze file: silver vacancy_skills, renamed and cast.
select
    cast(vacancy_id as varchar) as vacancy_id,
    cast(skill as varchar) as skill_name,
    cast(published_at as timestamptz) as published_at,
    cast(_bronze_key as varchar) as bronze_key,
    cast(_bronze_row as bigint) as bronze_row,
    cast(_ingested_at as timestamptz) as ingested_at
from {{ source('silver', 'vacancy_skills') }}
