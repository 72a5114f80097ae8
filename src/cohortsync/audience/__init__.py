"""Audience Studio: parent tables, rule-based segments and their activations.

- :mod:`rules`: the JSON rule language of segments;
- :mod:`compile`: rules to parameterised SQL, checked against the parent table;
- :mod:`mapping`: an activation's output mapping (columns to identifiers);
- :mod:`parents`, :mod:`segments`, :mod:`activations`: the operations the
  CLI, ``cohortsync apply`` and the scheduler call.
"""
