-- One row per (vacancy, skill) of the latest detail version of each vacancy: skills exploded from
-- an older bronze file of the same vacancy are dropped.
with

skills as (
    select * from {{ ref('stg_vacancy_skills') }}
),

latest_details as (
    select * from {{ ref('int_vacancy_details__latest') }}
)

select distinct
    skills.vacancy_id,
    skills.skill_name,
    latest_details.published_month
from skills
inner join latest_details
    on
        skills.vacancy_id = latest_details.vacancy_id
        and skills.bronze_key = latest_details.bronze_key
where skills.skill_name is not null
