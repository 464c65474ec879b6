"""`synthrelease verify` and `synthrelease keys`: signed bundles and their keys."""

from __future__ import annotations

from pathlib import Path

import click

from synthrelease.cli.app import cli


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--public-key", type=click.Path(path_type=Path), required=True)
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), default=None,
              help="Also check the manifest's ε, δ and accountant against this policy (the verifier's choice).")
def verify(bundle: Path, public_key: Path, policy_path: Path | None) -> None:
    """Check a bundle (folder or .tar.gz): signature, every file hash, no extra or missing file, the attestation."""
    from synthrelease.bundle.verify import check_against_policy, shown, verify_bundle

    if policy_path is not None:
        from synthrelease.policy.schema import load_policy

        load_policy(policy_path)  # a bad policy is bad input (exit 2), found before any verdict
    result = verify_bundle(bundle, public_key)
    rel = result.manifest.get("release", {})  # a dict: verify_bundle read the signer from it
    priv, used_policy = rel.get("privacy"), rel.get("policy")
    click.echo(f"OK: signature valid, {result.n_files} files match their SHA-256")
    if result.attested:
        click.echo("OK: attestation.intoto.jsonl: DSSE signature valid (same key), its in-toto statement names "
                   "every file by SHA-256 and states the manifest's release facts")
    else:
        click.echo("note: a synthrelease-bundle/1 bundle (written before attestations): no DSSE attestation")
    if isinstance(priv, dict) and priv:
        name = used_policy.get("name") if isinstance(used_policy, dict) else None
        click.echo(shown(f"epsilon {priv.get('epsilon')} delta {priv.get('delta')} ({priv.get('accountant')}), "
                         f"policy {name}"))
    if policy_path is not None:
        for line in check_against_policy(result.manifest, policy_path, bundle=bundle):
            click.echo(f"OK: {line}")


@cli.group()
def keys() -> None:
    """Signing keys."""


@keys.command("generate")
@click.option("--private", "private_path", type=click.Path(path_type=Path), default=Path("signing_key.pem"),
              show_default=True)
@click.option("--public", "public_path", type=click.Path(path_type=Path), default=Path("signing_key.pub.pem"),
              show_default=True)
def keys_generate(private_path: Path, public_path: Path) -> None:
    """Create an Ed25519 key pair (private key file mode 0600; never put it in a bundle)."""
    from synthrelease.bundle.signing import generate_keypair

    priv, pub = generate_keypair(private_path, public_path)
    click.echo(f"private key: {priv} (mode 0600, keep secret)")
    click.echo(f"public key:  {pub} (give to verifiers)")
