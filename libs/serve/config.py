"""Serve's configuration objects (Ray Serve's names and defaults), checked when they are built.

A bad field fails here, in the driver, with the field's name and what is allowed, instead of
deep inside a replica minutes later. Everything that crosses to the controller is a plain dict
(``to_dict``), so the controller needs no user code to read it.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

_ACTOR_OPTION_KEYS = ("num_cpus", "num_gpus", "memory", "resources", "runtime_env", "accelerator_type")
_PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(field: str, value: Any, *, minimum: float = 0.0, strict: bool = False,
                 integer: bool = False) -> None:
    """Raise ValueError naming ``field`` unless ``value`` is a number >= (or >) ``minimum``."""
    kind = "an integer" if integer else "a number"
    ok = (isinstance(value, int) and not isinstance(value, bool)) if integer else _is_number(value)
    if ok:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        relation = ">" if strict else ">="
        raise ValueError(f"{field} must be {kind} {relation} {minimum:g}, got {value!r}")


def _from_fields(cls: type, value: Any, option: str, noun: str) -> Any:
    """A config dataclass from itself or a dict of its fields; an unknown name is an error naming the known."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise TypeError(f"{option} must be a dict or {cls.__name__}, got {type(value).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"{option} has unknown {noun} {unknown}; allowed: {sorted(known)}")
    return cls(**value)


@dataclasses.dataclass
class AutoscalingConfig:
    """How a deployment scales on its ongoing requests per replica (Ray's fields and defaults)."""

    min_replicas: int = 1
    initial_replicas: int | None = None
    max_replicas: int = 1
    target_ongoing_requests: float = 2
    metrics_interval_s: float = 10.0
    look_back_period_s: float = 30.0
    smoothing_factor: float = 1.0
    upscale_smoothing_factor: float | None = None
    downscale_smoothing_factor: float | None = None
    upscaling_factor: float | None = None
    downscaling_factor: float | None = None
    downscale_delay_s: float = 600.0
    downscale_to_zero_delay_s: float | None = None
    upscale_delay_s: float = 30.0

    def __post_init__(self) -> None:
        check_number("autoscaling_config.min_replicas", self.min_replicas, integer=True)
        check_number("autoscaling_config.max_replicas", self.max_replicas, minimum=1, integer=True)
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"autoscaling_config.min_replicas ({self.min_replicas}) must be <= max_replicas "
                             f"({self.max_replicas})")
        if self.initial_replicas is not None:
            check_number("autoscaling_config.initial_replicas", self.initial_replicas, integer=True)
            if not self.min_replicas <= self.initial_replicas <= self.max_replicas:
                raise ValueError(f"autoscaling_config.initial_replicas ({self.initial_replicas}) must lie between "
                                 f"min_replicas ({self.min_replicas}) and max_replicas ({self.max_replicas})")
        check_number("autoscaling_config.target_ongoing_requests", self.target_ongoing_requests, strict=True)
        for name in ("metrics_interval_s", "look_back_period_s", "smoothing_factor"):
            check_number(f"autoscaling_config.{name}", getattr(self, name), strict=True)
        for name in ("downscale_delay_s", "upscale_delay_s"):
            check_number(f"autoscaling_config.{name}", getattr(self, name))
        for name in ("upscale_smoothing_factor", "downscale_smoothing_factor", "upscaling_factor",
                     "downscaling_factor"):
            if getattr(self, name) is not None:
                check_number(f"autoscaling_config.{name}", getattr(self, name), strict=True)
        if self.downscale_to_zero_delay_s is not None:
            check_number("autoscaling_config.downscale_to_zero_delay_s", self.downscale_to_zero_delay_s)

    @classmethod
    def from_value(cls, value: Any) -> "AutoscalingConfig":
        """An AutoscalingConfig from itself or a dict of its fields (unknown keys are an error)."""
        return _from_fields(cls, value, "autoscaling_config", "field(s)")

    def initial_target(self) -> int:
        return self.min_replicas if self.initial_replicas is None else self.initial_replicas

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# "auto" (Ray 2.x): autoscaling between 1 and 100 replicas at 2 ongoing requests each.
AUTO_NUM_REPLICAS = {"min_replicas": 1, "max_replicas": 100, "target_ongoing_requests": 2}


def check_ray_actor_options(options: Any) -> dict:
    """A copy of ``ray_actor_options`` with every key and value checked."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"ray_actor_options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - set(_ACTOR_OPTION_KEYS))
    if unknown:
        raise ValueError(f"ray_actor_options has unknown key(s) {unknown}; allowed: {list(_ACTOR_OPTION_KEYS)}")
    for key in ("num_cpus", "num_gpus", "memory"):
        if options.get(key) is not None:
            check_number(f"ray_actor_options['{key}']", options[key])
    resources = options.get("resources")
    if resources is not None:
        if not isinstance(resources, dict) or not all(isinstance(k, str) for k in resources):
            raise TypeError("ray_actor_options['resources'] must be a dict of resource name -> amount")
        for name, amount in resources.items():
            check_number(f"ray_actor_options['resources']['{name}']", amount)
    if options.get("runtime_env") is not None and not isinstance(options["runtime_env"], dict):
        raise TypeError("ray_actor_options['runtime_env'] must be a dict")
    if options.get("accelerator_type") is not None and not isinstance(options["accelerator_type"], str):
        raise TypeError("ray_actor_options['accelerator_type'] must be a string")
    return dict(options)


@dataclasses.dataclass
class DeploymentConfig:
    """The options of one deployment, as the controller reads them (plain values only)."""

    num_replicas: int = 1
    max_ongoing_requests: int = 5
    max_queued_requests: int = -1
    user_config: Any = None
    autoscaling_config: dict | None = None
    health_check_period_s: float = 10.0
    health_check_timeout_s: float = 30.0
    graceful_shutdown_wait_loop_s: float = 2.0
    graceful_shutdown_timeout_s: float = 20.0
    ray_actor_options: dict = dataclasses.field(default_factory=lambda: {"num_cpus": 1})
    placement_group_bundles: list | None = None
    placement_group_strategy: str = "PACK"

    def __post_init__(self) -> None:
        check_number("num_replicas", self.num_replicas, integer=True)
        check_number("max_ongoing_requests", self.max_ongoing_requests, minimum=1, integer=True)
        check_number("max_queued_requests", self.max_queued_requests, minimum=-1, integer=True)
        check_number("health_check_period_s", self.health_check_period_s, strict=True)
        check_number("health_check_timeout_s", self.health_check_timeout_s, strict=True)
        check_number("graceful_shutdown_wait_loop_s", self.graceful_shutdown_wait_loop_s, strict=True)
        check_number("graceful_shutdown_timeout_s", self.graceful_shutdown_timeout_s)
        self.ray_actor_options = check_ray_actor_options(self.ray_actor_options)
        if self.autoscaling_config is not None:
            self.autoscaling_config = AutoscalingConfig.from_value(self.autoscaling_config).to_dict()
        if self.placement_group_bundles is not None:
            bundles = self.placement_group_bundles
            if (not isinstance(bundles, list) or not bundles
                    or not all(isinstance(b, dict) and b for b in bundles)):
                raise ValueError("placement_group_bundles must be a non-empty list of non-empty resource dicts, "
                                 f"got {bundles!r}")
        if self.placement_group_strategy not in _PLACEMENT_STRATEGIES:
            raise ValueError(f"placement_group_strategy must be one of {list(_PLACEMENT_STRATEGIES)}, "
                             f"got {self.placement_group_strategy!r}")

    def initial_target(self) -> int:
        if self.autoscaling_config is not None:
            return AutoscalingConfig.from_value(self.autoscaling_config).initial_target()
        return self.num_replicas

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def deployment_config_from_options(options: dict) -> DeploymentConfig:
    """Build a DeploymentConfig from ``@serve.deployment``'s keyword options (defaults filled in).

    Handles Ray's spellings: ``num_replicas="auto"``, the deprecated ``max_concurrent_queries``,
    and num_replicas together with autoscaling_config (an error)."""
    opts = dict(options)
    if "max_concurrent_queries" in opts:
        value = opts.pop("max_concurrent_queries")
        warnings.warn("max_concurrent_queries is deprecated; use max_ongoing_requests", DeprecationWarning,
                      stacklevel=4)
        opts.setdefault("max_ongoing_requests", value)
    num_replicas = opts.get("num_replicas")
    autoscaling = opts.get("autoscaling_config")
    if num_replicas is not None and autoscaling is not None:
        raise ValueError("num_replicas and autoscaling_config cannot both be set: give num_replicas for a fixed "
                         "number of replicas, or autoscaling_config (or num_replicas='auto') to autoscale")
    if num_replicas == "auto":
        opts.pop("num_replicas")
        opts["autoscaling_config"] = dict(AUTO_NUM_REPLICAS)
    elif isinstance(num_replicas, str):
        raise ValueError(f"num_replicas must be an integer >= 0 or 'auto', got {num_replicas!r}")
    opts = {k: v for k, v in opts.items() if v is not None or k == "user_config"}
    return DeploymentConfig(**opts)


@dataclasses.dataclass
class HTTPOptions:
    """Where the HTTP proxies listen. ``port=0`` picks a free port (tests use it)."""

    host: str = "127.0.0.1"
    port: int = 8000
    root_path: str = ""
    request_timeout_s: float | None = None
    max_body_bytes: int = 100 * 1024 * 1024
    keep_alive_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"http_options.host must be a non-empty string, got {self.host!r}")
        check_number("http_options.port", self.port, integer=True)
        if self.port > 65535:
            raise ValueError(f"http_options.port must be <= 65535, got {self.port}")
        if self.request_timeout_s is not None:
            check_number("http_options.request_timeout_s", self.request_timeout_s, strict=True)
        check_number("http_options.max_body_bytes", self.max_body_bytes, minimum=1, integer=True)
        check_number("http_options.keep_alive_timeout_s", self.keep_alive_timeout_s)

    @classmethod
    def from_value(cls, value: Any) -> "HTTPOptions":
        if value is None:
            return cls()
        return _from_fields(cls, value, "http_options", "key(s)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
