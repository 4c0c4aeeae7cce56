"""`netplane bench compare`: the proxy modes measured side by side (lab.py builds the
namespaces, measure.py measures one mode at one size, compare.py runs the plan, report.py
and plots.py write the result)."""
