"""Choose a stack provider by name (``stack up``) or by what a state file says (``stack down``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from quotaquake.errors import UsageError
from quotaquake.stack.handles import handle_for
from quotaquake.stack.provider import Provider, ServiceHandle
from quotaquake.stack.state import StackState

PROVIDERS = ("local", "docker", "external")


def make_provider(
    name: str,
    *,
    state_path: Path,
    policy_path: Path,
    replicas: int,
    defect: str | None,
    target: Path | None = None,
    allow_hosts: Sequence[str] = (),
) -> Provider:
    if name == "local":
        from quotaquake.stack.local import LocalProvider

        return LocalProvider(
            state_path=state_path,
            work_root=state_path.parent,
            policy_path=policy_path,
            replicas=replicas,
            defect=defect,
        )
    if name == "docker":
        from quotaquake.stack.docker import DockerProvider

        if defect:
            raise UsageError("--defect: seeded defects live in the embedded limiter; the docker provider runs Kong")
        return DockerProvider(state_path=state_path, policy_path=policy_path, replicas=replicas)
    if name == "external":
        if target is None:
            raise UsageError("--target: the external provider needs a target file (gateway URL, consumers)")
        from quotaquake.stack.external import ExternalProvider

        return ExternalProvider(target, state_path=state_path, allow_hosts=allow_hosts)
    raise UsageError(f"--provider: unknown provider '{name}' (choose one of: {', '.join(PROVIDERS)})")


class _Untouched:
    """``down`` for an external stack: the deployment is not ours, nothing is stopped."""

    name = "external"

    def up(self) -> StackState:
        raise UsageError("an external stack is described by its target file; use `stack up --provider external`")

    def down(self, state: StackState) -> None:
        del state

    def handle(self, state: StackState, service: str) -> ServiceHandle:
        return handle_for(state, service)


def provider_for_state(state: StackState, path: Path) -> Provider:
    """The provider that can stop ``state``'s stack."""
    if state.provider == "external":
        return _Untouched()
    policy = Path(state.policy_file) if state.policy_file else Path("stack/policy.yaml")
    return make_provider(state.provider, state_path=path, policy_path=policy, replicas=state.replicas, defect=None)
