-- One row per (professional role, publication month), over vacancies with a salary in RUR.
with

salaries as (
    select * from {{ ref('int_vacancy_salaries') }}
    where salary_rur is not null
),

role_salaries as (
    select distinct
        vacancy_id,
        published_month,
        published_at,
        salary_rur,
        unnest(professional_role_ids) as professional_role_id,
        unnest(professional_role_names) as professional_role_name
    from salaries
)

select
    professional_role_id,
    published_month,
    arg_max(professional_role_name, published_at) as professional_role_name,
    count(distinct vacancy_id) as salaried_vacancy_count,
    quantile_cont(salary_rur, 0.25) as salary_p25_rur,
    quantile_cont(salary_rur, 0.5) as salary_median_rur,
    quantile_cont(salary_rur, 0.75) as salary_p75_rur
from role_salaries
where professional_role_id is not null
group by professional_role_id, published_month
order by published_month, professional_role_id
