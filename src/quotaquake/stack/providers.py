"""Choose a stack provider by name (``stack up``) or by what a state file says (``stack down``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from quotaquake.errors import UsageError
from quotaquake.stack.provider import Provider
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

        return DockerProvider(state_path=state_path, policy_path=policy_path, replicas=replicas)  # type: ignore[no-any-return]
    if name == "external":
        if target is None:
            raise UsageError("--target: the external provider needs a target file (gateway URL, consumers)")
        from quotaquake.stack.external import ExternalProvider

        return ExternalProvider(target, state_path=state_path, allow_hosts=allow_hosts)  # type: ignore[no-any-return]
    raise UsageError(f"--provider: unknown provider '{name}' (choose one of: {', '.join(PROVIDERS)})")


def provider_for_state(state: StackState, path: Path) -> Provider:
    """The provider that can stop ``state``'s stack."""
    policy = Path(state.policy_file) if state.policy_file else Path("stack/policy.yaml")
    return make_provider(
        state.provider,
        state_path=path,
        policy_path=policy,
        replicas=state.replicas,
        defect=None,
        target=None if state.provider != "external" else Path(state.work_dir),
    )
