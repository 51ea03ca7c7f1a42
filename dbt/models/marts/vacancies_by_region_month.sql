-- One row per (region, publication month).
with

salaries as (
    select * from {{ ref('int_vacancy_salaries') }}
)

select
    area_id,
    published_month,
    arg_max(area_name, published_at) as area_name,
    count(*) as vacancy_count,
    count(salary_rur) as salaried_vacancy_count,
    quantile_cont(salary_rur, 0.5) as median_salary_rur
from salaries
group by area_id, published_month
order by published_month, area_id
