"""The provider registry: every stack provider by name, and the provider of a running stack's state file.

Providers are imported only when used (Docker's client library is not loaded for the local stack).
Each provider class has ``from_options(ProviderOptions)``; this module is the only place that maps a
provider name to its code.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, cast

from quotaquake.errors import UsageError
from quotaquake.policy import DEFAULT_POLICY_PATH
from quotaquake.stack.provider import Provider, ProviderOptions, ServiceHandle
from quotaquake.stack.state import StackState

PROVIDERS: dict[str, str] = {
    "local": "quotaquake.stack.local.provider:LocalProvider",
    "docker": "quotaquake.stack.docker.provider:DockerProvider",
    "external": "quotaquake.stack.external:ExternalProvider",
}
"""Provider name -> ``module:class``. ``local``: the embedded stack; ``docker``: Kong 3.9 via
Testcontainers; ``external``: a deployment quotaquake does not run, described by a target file."""


class ProviderClass(Protocol):
    def from_options(self, options: ProviderOptions) -> Provider: ...


def provider_class(name: str) -> ProviderClass:
    """The class registered as ``name``; one-line ``UsageError`` naming ``--provider`` otherwise."""
    try:
        module_name, class_name = PROVIDERS[name].split(":")
    except KeyError:
        raise UsageError(f"--provider: unknown provider '{name}' (choose one of: {', '.join(PROVIDERS)})") from None
    return cast(ProviderClass, getattr(importlib.import_module(module_name), class_name))


def provider_named(name: str, options: ProviderOptions) -> Provider:
    """A provider to start a stack with (``stack up``, ``quotaquake run`` with no stack up)."""
    return provider_class(name).from_options(options)


def options_of(state: StackState) -> ProviderOptions:
    """The options a state file recorded, to rebuild its provider (``stack down``, handles)."""
    return ProviderOptions(
        state_path=Path(state.state_file),
        policy_path=Path(state.policy_file) if state.policy_file else DEFAULT_POLICY_PATH,
        replicas=state.replicas,
        defect=state.defect,
        redis=state.redis,
        target=Path(state.target_file) if state.target_file else None,
    )


def provider_for(state: StackState) -> Provider:
    """The provider that runs ``state``'s stack."""
    return provider_named(state.provider, options_of(state))


def handle_for(state: StackState, service: str) -> ServiceHandle:
    """The fault-injection handle of ``service`` of a running stack, whatever provider runs it."""
    return provider_for(state).handle(state, service)
