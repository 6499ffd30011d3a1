"""The API and the repair commands build their store and policy without Faust: a
Faust-free process starts on less CPU (no services)."""

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
