{#- 1 for the newest version of each key across bronze files: the newest bronze object wins,
    ties go to the later key, then the later row. One rule for every *__latest model. -#}
{% macro newest_version(partition_by) -%}
    row_number() over (
        partition by {{ partition_by }}
        order by ingested_at desc, bronze_key desc, bronze_row desc
    )
{%- endmacro %}
