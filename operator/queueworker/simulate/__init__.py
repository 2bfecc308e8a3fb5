"""The simulator: replay a job trace through a scaling policy (ours, KEDA+HPA, Horizon).

cli.py is `queueworker simulate`, trace.py reads traces, model.py is the
discrete-event world, policies.py the policies compared, visibility.py what
the operator sees per queue layout and view.py the observation built from it.
"""
