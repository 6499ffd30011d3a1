"""What processes load as they start: the API and the repair commands build their store
and policy without Faust, and nothing but a lift's interval loads scipy (1.5 s of CPU).
No services."""

from __future__ import annotations

import subprocess
import sys


def test_the_api_and_the_commands_load_no_faust() -> None:
    code = """if True:
        import sys
        from agents.catalogue_holder import CatalogueHolder
        from agents.learned_policy import ModelHolder
        from streams.api.server import create_api
        from streams.configured import build_policy, build_store, intervention_holdout
        from streams.settings import Settings
        import streams.cli_repairs, streams.dead_letter_tool, streams.redis_checks
        from schemas import load_catalogue
        settings = Settings()
        create_api(settings)
        build_store(settings, redis_url="redis://127.0.0.1:9/0")
        catalogue = CatalogueHolder(load_catalogue(settings.catalogue_path))
        build_policy(settings, catalogue, ModelHolder())
        intervention_holdout(settings)
        print(sorted({m.split(".")[0] for m in sys.modules} & {"faust", "mode"}))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_scipy_is_loaded_for_an_interval_only() -> None:
    code = """if True:
        import sys
        import streams.cli_repairs, streams.cli_reports, streams.dead_letter_tool
        import streams.demo, streams.lift_report
        from streams.cli_repairs import cmd_dead_letters
        from streams.lift_report import instant
        instant("2026-12-07")
        print("scipy" in sys.modules)
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
