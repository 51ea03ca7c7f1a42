-- One row per (key skill, publication month).
with

skills as (
    select * from {{ ref('stg_vacancy_skills') }}
    where skill_name is not null
),

details as (
    select * from {{ ref('stg_vacancy_details') }}
),

month_totals as (
    select
        published_month,
        count(*) as vacancies_with_details
    from details
    group by published_month
),

skill_counts as (
    select
        skill_name,
        published_month,
        count(distinct vacancy_id) as vacancy_count
    from skills
    group by skill_name, published_month
)

select
    skill_counts.skill_name,
    skill_counts.published_month,
    skill_counts.vacancy_count,
    month_totals.vacancies_with_details,
    skill_counts.vacancy_count / month_totals.vacancies_with_details as vacancy_share,
    rank() over (
        partition by skill_counts.published_month
        order by skill_counts.vacancy_count desc
    ) as demand_rank
from skill_counts
inner join month_totals
    on skill_counts.published_month = month_totals.published_month
order by skill_counts.published_month, demand_rank, skill_counts.skill_name
