{#-
    Fails for every non-null value of column_name outside [min_value, max_value] (inclusive).
    A missing bound compares the column with itself, which is never true.
-#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

    select {{ column_name }}
    from {{ model }}
    where
        {{ column_name }} is not null
        and (
            {{ column_name }} < {{ column_name if min_value is none else min_value }}
            or {{ column_name }} > {{ column_name if max_value is none else max_value }}
        )

{% endtest %}
