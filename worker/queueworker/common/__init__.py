"""What every part of queueworker shares: one error base, one redactor, one log helper.

It lives in the worker's folder because the worker image must not need the
operator; the operator, local mode and the simulator import it from here.
"""
