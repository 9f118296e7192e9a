"""Build hook: the packages that setup.cfg maps with ``package_dir`` (the circuit library
``circuits/`` -> ``hwbp/circuits/``) join the packages that ``find:`` discovers."""

from setuptools import Distribution, setup


class _Distribution(Distribution):
    def parse_config_files(self, *args, **kwargs):  # noqa: D102
        super().parse_config_files(*args, **kwargs)
        mapped = [p for p in (self.package_dir or {}) if p and p not in (self.packages or [])]
        self.packages = list(self.packages or []) + mapped


setup(distclass=_Distribution)
