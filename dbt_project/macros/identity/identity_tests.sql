{#-
    Generic test `identity_not_quarantined`: fails for every row of a model keyed by
    (identifier_type, identifier) whose identifier is in identity_quarantine. A quarantined hub must
    never be stitched (reverse-etl-identity-consent.md §3.4 step 8).

        data_tests:
          - identity_not_quarantined
-#}
{% test identity_not_quarantined(model) %}

select graph.identifier_type, graph.identifier
from {{ model }} as graph
inner join {{ ref('identity_quarantine') }} as quarantine
    on quarantine.identifier_type = graph.identifier_type
    and quarantine.identifier = graph.identifier

{% endtest %}
