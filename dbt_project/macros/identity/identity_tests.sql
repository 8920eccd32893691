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

{#-
    Generic test `identity_one_user_id_per_profile`: fails for every profile of identity_graph with
    more than one user_id (reverse-etl-identity-consent.md §3.4 steps 5 and 8: at most one product
    account per person). Two accounts in one profile would share one consent status, one primary
    email and one Customer.io person, so one person's opt-in could send to the other.

        data_tests:
          - identity_one_user_id_per_profile
-#}
{% test identity_one_user_id_per_profile(model) %}

select profile_id, count(*) as user_ids
from {{ model }}
where identifier_type = 'user_id'
group by profile_id
having count(*) > 1

{% endtest %}
