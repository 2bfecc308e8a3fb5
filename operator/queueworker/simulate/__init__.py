"""The simulator: replay a job trace through a scaling policy (ours, KEDA+HPA, Horizon).

cli.py is `queueworker simulate`, trace.py reads traces, model.py is the
discrete-event world, policies.py the policies compared.
"""
