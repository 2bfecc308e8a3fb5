"""A real Laravel app (Debian's php-laravel-framework 8.83) for the tests.

The skeleton in tests/peers/laravel/ (artisan, bootstrap/app.php, config/,
routes/console.php, App\\Jobs\\SleepJob) loads the framework through Debian's
/usr/share/php autoloaders: no composer, no network. Each test copies it into
its tmp dir (Laravel writes bootstrap/cache/ and storage/) and points it at
its Redis through the environment config/database.php reads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SKELETON = ROOT / "tests" / "peers" / "laravel"
PREFIX = "laravel_database_"  # the app's Redis `options.prefix` (Laravel's default)


def ensure_php() -> None:
    """Install php-cli, php-redis and php-laravel-framework (idempotent); fails loudly."""
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-php.sh")], check=True, timeout=600)


@dataclass(frozen=True)
class LaravelApp:
    root: Path
    env: dict[str, str]  # what config/database.php and config/queue.php read

    @property
    def artisan(self) -> str:
        return str(self.root / "artisan")

    def worker(self, *flags: str) -> list[str]:
        """argv of `php artisan queue:work redis` with `flags`."""
        return ["php", self.artisan, "queue:work", "redis", *flags]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(["php", self.artisan, *args], env={**os.environ, **self.env},
                             capture_output=True, text=True, timeout=timeout, check=False)
        assert out.returncode == 0, f"artisan {args[0]}: {out.stdout}{out.stderr}"
        return out

    def dispatch(self, marks: Path, *jobs: str) -> None:
        """Dispatch SleepJobs through Laravel, each `name:seconds[:delay[:fail]]`."""
        self.run("jobs:dispatch", str(marks), *jobs)

    def popen(self, *flags: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.worker(*flags), env={**os.environ, **self.env},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def make_app(tmp_path: Path, redis_url: str, **env: str) -> LaravelApp:
    """A copy of the skeleton under tmp_path, using the Redis at `redis_url`."""
    ensure_php()
    root = tmp_path / "laravel"
    shutil.copytree(SKELETON, root)
    for d in ("bootstrap/cache", "storage/logs", "storage/framework/cache"):
        (root / d).mkdir(parents=True, exist_ok=True)
    url = urlsplit(redis_url)
    base = {"REDIS_HOST": url.hostname or "127.0.0.1", "REDIS_PORT": str(url.port or 6379),
            "REDIS_DB": (url.path or "/0").lstrip("/") or "0", "REDIS_PREFIX": PREFIX}
    return LaravelApp(root, {**base, **env})
