"""SSH key helpers using the real ssh-keygen."""

from __future__ import annotations

from pathlib import Path

from ._proc import run


def make_ssh_keypair(
    directory: Path, type: str = "ed25519", passphrase: str = "", comment: str = "nectar-lab"
) -> tuple[Path, str]:
    """Generate a key pair with ssh-keygen in directory; return (private key path, public key line).

    The file is named id_<type> (id_<type>-2, ... if taken); the .pub file sits beside it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / f"id_{type}"
    n = 1
    while private.exists() or private.with_name(private.name + ".pub").exists():
        n += 1
        private = directory / f"id_{type}-{n}"
    run(["ssh-keygen", "-q", "-t", type, "-N", passphrase, "-C", comment, "-f", str(private)], timeout=60)
    public = private.with_name(private.name + ".pub").read_text().strip()
    return private, public
