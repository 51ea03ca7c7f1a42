{#- Silver's commit log, read once per dbt invocation by the on-run-start hooks (dbt_project.yml).

    silver_ledger_table(): main.silver_ledger, one row per ledger entry
      (LAKEHOUSE_DBT_SILVER_ROOT/_ledger/<source>/*.json); empty, with the same columns, when
      nothing was loaded yet.
    silver_files_table(): main.silver_files, the silver files that each bronze key's newest
      entry commits (its outputs and quarantine file). Silver sources read only these files
      (_silver__sources.yml), so dbt sees an object's previous outputs or all of its new ones,
      never a mixture, and never the files of a killed or superseded attempt.

    "Newest" is the rule of lakehouse_common.ledger.version_rank: the latest bronze version
    (bronze_modified), then the latest finished; keep the two in step. ledger_newest() is that
    rule for dbt: main.silver_files and the load_history mart both use it. -#}

{% macro ledger_newest(source, key, modified, finished) -%}
    row_number() over (
        partition by {{ source }}, {{ key }}
        order by {{ modified }} desc nulls last, {{ finished }} desc
    ) = 1
{%- endmacro %}

{% macro silver_root() -%}
    {{ return(env_var('LAKEHOUSE_DBT_SILVER_ROOT', 'data/silver')) }}
{%- endmacro %}

{% macro silver_ledger_columns() -%}
    {{ return({
        'source': 'varchar',
        'key': 'varchar',
        'etag': 'varchar',
        'size': 'bigint',
        'status': 'varchar',
        'contract_version': 'varchar',
        'rows_in': 'bigint',
        'rows_out': 'bigint',
        'rows_quarantined': 'bigint',
        'rows_deduplicated': 'bigint',
        'outputs': 'varchar[]',
        'quarantine': 'varchar',
        'reason': 'varchar',
        'started_at': 'varchar',
        'finished_at': 'varchar',
        'seconds': 'double',
        'bronze_modified': 'varchar'
    }) }}
{%- endmacro %}

{% macro silver_ledger_table() -%}
    {%- set entries = silver_root() ~ '/_ledger/*/*.json' -%}
    {%- set columns = silver_ledger_columns() -%}
    {%- set found = 0 -%}
    {%- if execute -%}
        {%- set found = run_query("select count(*) from glob('" ~ entries ~ "')").columns[0].values()[0] -%}
    {%- endif -%}
    create or replace table main.silver_ledger as
    {% if found > 0 -%}
        select {{ columns.keys() | join(', ') }}
        from read_json(
            '{{ entries }}',
            format = 'auto',
            columns = { {%- for name, type in columns.items() %}'{{ name }}': '{{ type }}'{{ ', ' if not loop.last }}{% endfor -%} }
        )
    {%- else -%}
        select {% for name, type in columns.items() %}cast(null as {{ type }}) as {{ name }}{{ ', ' if not loop.last }}{% endfor %}
        where false
    {%- endif %}
{%- endmacro %}

{% macro silver_files_table() -%}
    create or replace table main.silver_files as
    with newest as (
        select *
        from main.silver_ledger
        qualify {{ ledger_newest('source', 'key', "nullif(bronze_modified, '')", 'finished_at') }}
    )

    select
        source,
        key as bronze_key,
        '{{ silver_root() }}/' || file as path
    from (
        select
            source,
            key,
            unnest(
                list_concat(coalesce(outputs, []), case when quarantine is null then [] else [quarantine] end)
            ) as file
        from newest
    )
{%- endmacro %}
