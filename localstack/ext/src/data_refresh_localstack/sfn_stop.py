"""StopExecution ends an execution ABORTED, as on AWS, even while a Map state runs.

LocalStack 2026.3 raises MapIterationAborted inside a running Map when the execution is
stopped; the Map's error handling then fails on the event details (an AttributeError) and
the execution ends FAILED with States.Runtime. On AWS a stopped execution is always ABORTED,
and the data refresh's cleanup rule and its operators rely on that status. Patched here: an
execution that was asked to stop and then ended FAILED with States.Runtime is reported
ABORTED, without error or cause, before its status change event is published.
"""

from __future__ import annotations

import logging

LOG = logging.getLogger(__name__)

_patched = False


def apply_patches() -> None:
    global _patched
    if _patched:
        return
    _patched = True
    from localstack.aws.api.stepfunctions import ExecutionStatus
    from localstack.services.stepfunctions.backend.execution import (
        BaseExecutionWorkerCommunication,
        Execution,
    )
    from localstack.utils.patch import patch

    @patch(Execution.stop)
    def stop(fn, self, stop_date, error, cause):
        self.data_refresh_stop_requested = True
        return fn(self, stop_date, error, cause)

    @patch(BaseExecutionWorkerCommunication._reflect_execution_status)
    def reflect_execution_status(fn, self):
        fn(self)
        execution = self.execution
        if (
            getattr(execution, "data_refresh_stop_requested", False)
            and execution.exec_status == ExecutionStatus.FAILED
            and execution.error == "States.Runtime"
        ):
            LOG.info("execution %s was stopped: reporting ABORTED, not the Map's %r",
                     execution.exec_arn, execution.cause)
            execution.exec_status = ExecutionStatus.ABORTED
            execution.error = None
            execution.cause = None
