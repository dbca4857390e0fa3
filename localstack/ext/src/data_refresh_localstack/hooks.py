"""LocalStack lifecycle hooks of the extension (entry points in pyproject.toml)."""

import atexit
import logging

from localstack.runtime import hooks

from . import ec2_host, lambda_host, procs, sfn_stop

LOG = logging.getLogger(__name__)


def _stop_everything() -> None:
    lambda_host.stop_all()
    ec2_host.kill_all()


@hooks.on_infra_start()
def on_infra_start():
    # Groups recorded by a LocalStack that was killed hard (SIGKILL) are orphans now.
    folder = procs.records_dir()
    if folder is not None:
        for entry in procs.reap(folder):
            LOG.warning("killed leftover %s process group %s (%s)", entry["kind"], entry["pgid"],
                        entry["name"])
    ec2_host.work_dir().mkdir(parents=True, exist_ok=True)
    ec2_host.apply_patches()
    sfn_stop.apply_patches()
    atexit.register(_stop_everything)


@hooks.on_infra_shutdown()
def on_infra_shutdown():
    _stop_everything()
