"""The README documents every setting (operators look settings up there, not in code)."""

from hub.settings import Settings
from tests.support import repo_root


def test_every_setting_is_in_the_readme() -> None:
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    missing = [f"HUB_{name.upper()}" for name in Settings.__struct_fields__]
    missing = [variable for variable in missing if variable not in readme]
    assert not missing, f"README 'Configuration' lacks {missing}"
