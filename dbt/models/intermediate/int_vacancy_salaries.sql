-- One row per vacancy, with its salary point converted to roubles (RUR).
-- The salary point is the mean of salary_from and salary_to when both are present, else
-- whichever is present. It is converted with the latest rate on or before the publication date;
-- RUR needs no rate. salary_rur is null when there is no salary or no usable rate.
with

vacancies as (
    select * from {{ ref('stg_vacancies') }}
),

rates as (
    select * from {{ ref('stg_currency_rates') }}
),

salary_points as (
    select
        vacancy_id,
        area_id,
        area_name,
        salary_from,
        salary_to,
        salary_currency,
        professional_role_ids,
        professional_role_names,
        published_at,
        published_month,
        cast(published_at as date) as published_date,
        case
            when salary_from is not null and salary_to is not null
                then (salary_from + salary_to) / 2
            else coalesce(salary_from, salary_to)
        end as salary_point
    from vacancies
),

converted as (
    select
        salary_points.*,
        case
            when salary_points.salary_currency = 'RUR' then 1.0
            else rates.rub_per_unit
        end as rub_per_unit,
        case
            when salary_points.salary_currency = 'RUR' then null
            else rates.rate_date
        end as rate_date
    from salary_points
    asof left join rates
        on
            salary_points.salary_currency = rates.currency_code
            and salary_points.published_date >= rates.rate_date
)

select
    vacancy_id,
    area_id,
    area_name,
    salary_from,
    salary_to,
    salary_currency,
    salary_point,
    rub_per_unit,
    rate_date,
    professional_role_ids,
    professional_role_names,
    published_at,
    published_month,
    salary_point * rub_per_unit as salary_rur
from converted
