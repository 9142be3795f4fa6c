"""Juno's IPython extension (``%load_ext juno``): cell magics, output routing, interrupts.

``%load_ext juno`` calls ``juno.load_ipython_extension(ip)``, which lands here: it registers
the magics of juno.kernel_ext.magics and installs output routing and interrupt handling.
"""
from __future__ import annotations

from typing import Any

_magics: dict[int, Any] = {}


def load_ipython_extension(ip: Any) -> None:
    from juno.kernel_ext import interrupts, output
    from juno.kernel_ext.magics import JunoMagics

    if id(ip) not in _magics:
        magics = JunoMagics(ip)
        ip.register_magics(magics)
        _magics[id(ip)] = magics
    output.install(ip)
    interrupts.install(ip)


def unload_ipython_extension(ip: Any) -> None:
    from juno.kernel_ext import interrupts, output

    magics = _magics.pop(id(ip), None)
    if magics is not None:
        magics.sessions.stop_all()
        registry = ip.magics_manager.magics
        for kind, names in magics.magics.items():
            for name in names:
                registry[kind].pop(name, None)
    interrupts.uninstall(ip)
    output.uninstall(ip)
