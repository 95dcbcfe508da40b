"""Packaging for homecare-agent.

Runtime dependencies are the ones the contract (docs/spec.md §2) names plus what signing needs
(PyJWT + cryptography). GPIO backends that only exist on a Raspberry Pi live in the
``pi`` extra behind environment markers, so ``pip install .[test]`` works on x86 CI.
"""
from setuptools import find_packages, setup

ON_PI = "platform_machine == 'aarch64' or platform_machine == 'armv7l' or platform_machine == 'armv6l'"

setup(
    name="homecare-agent",
    version="0.1.0",
    description="Raspberry Pi gateway: debounced SOS/door/smoke sensors, signed events, durable MQTT delivery",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9,<3.14",
    packages=find_packages(include=["agent", "agent.*", "drivers", "drivers.*", "receiver",
                                    "receiver.*"]),
    include_package_data=True,
    package_data={"agent": ["py.typed"], "drivers": ["py.typed"], "receiver": ["py.typed"]},
    # the demo and example configs, for installs that are not a checkout
    data_files=[("share/homecare-agent", ["config/demo.yaml", "config/example.yaml"])],
    install_requires=[
        # 2.0.1.post3: earlier 2.0.1 post-releases break backend selection on a Pi 5.
        "gpiozero>=2.0.1.post3",
        "paho-mqtt>=2.0,<3",
        "PyYAML>=5.4",
        "PyJWT>=2.8",
        "cryptography>=41",
    ],
    extras_require={
        "pi": [
            f"RPi.GPIO>=0.7.1; ({ON_PI})",
            # lgpio's PyPI wheels exist only for some Pythons; pinned to the release that
            # has them. Where pip cannot build it, use Debian's python3-lgpio (README).
            f"lgpio==0.2.2.0; ({ON_PI}) and python_version < '3.13'",
        ],
        # the reference receiver (docs/integrators.md): PostgreSQL; its web page is stdlib
        "receiver": ["psycopg[binary]>=3.1"],
        "test": [
            "pytest>=7.4",
            "pytest-timeout>=2.2",
            "hypothesis>=6.80",
            "jwcrypto>=1.5",
            "fake-rpi>=0.7.1",
            "mypy>=1.5",
            "types-PyYAML",
            # an independent SIA DC-09 receiver for the ARC path's tests; 3.2 needs Python 3.10+
            "pysiaalarm>=3.2,<4; python_version >= '3.10'",
            "psycopg[binary]>=3.1",
            # the browser test drives Debian's chromium through its chromedriver
            "selenium>=4.10",
        ],
    },
    entry_points={"console_scripts": ["homecare-agent=agent.cli.main:main",
                                    "homecare-receiver=receiver.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.13",
        "Operating System :: POSIX :: Linux",
    ],
)
