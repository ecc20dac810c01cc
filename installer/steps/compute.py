"""After the proof step's visibility attempts: CUDA compute in the builtin verification
image (installer.computeproof), and with the bundle's Compose the guide's GPU service
(installer.composeproof), each run the way the first deciding attempt that passed ran."""

from __future__ import annotations

from collections.abc import Sequence

from installer import composeproof, computeproof, containers, invocation
from installer.errors import GpubundleError
from installer.installplan import proof_images
from installer.layout import VERIFY_IMAGE_ARCHIVE
from installer.steps import StepContext


def _builtin_passed(
    ctx: StepContext, results: Sequence[containers.ProofResult]
) -> tuple[str, containers.ProofAttempt] | None:
    """The builtin image and its first deciding attempt that passed, if any."""
    builtin = [i.ref for i in proof_images(ctx.manifest) if i.archive == VERIFY_IMAGE_ARCHIVE]
    result = next((r for r in results if builtin and r.image == builtin[0]), None)
    passed = [a for a in result.attempts if a.passed and a.required] if result else []
    return (result.image, passed[0]) if result and passed else None


def run(ctx: StepContext, results: Sequence[containers.ProofResult], uuids: Sequence[str]) -> str:
    """The compute probe; raises its failure, returns the line for the report."""
    if ctx.compute_size == computeproof.OFF:
        return "compute not checked (--compute-size off)"
    found = _builtin_passed(ctx, results)
    if found is None:
        return "compute not checked: the bundle has no builtin verification image"
    image, attempt = found
    if not computeproof.has_probe(image):
        return f"compute not checked: {image} has no compute probe (an older bundle)"
    result = computeproof.run_probe(image, attempt.name, attempt.argv, uuids, size=ctx.compute_size)
    ctx.console.table(
        ["image", "GPU", "result", "evidence"],
        computeproof.compute_rows([result]),
        title="GPU compute",
    )
    ctx.compute = [result.as_dict()]
    failure = computeproof.compute_failure([result])
    if failure is not None:
        raise failure
    return computeproof.compute_summary([result])


def run_compose(
    ctx: StepContext, results: Sequence[containers.ProofResult], uuids: Sequence[str]
) -> str:
    """With the bundle's Compose (--with-compose): the guide's GPU service, brought up."""
    if not set(ctx.manifest.requested) & set(composeproof.COMPOSE_PACKAGES):
        return ""
    found = _builtin_passed(ctx, results)
    if found is None:
        return "; compose not checked: the bundle has no builtin verification image"
    image, attempt = found
    compose = composeproof.find_compose()
    if compose is None:
        raise GpubundleError(
            "the bundle carried Docker Compose, but neither `docker compose` nor "
            "`docker-compose` runs on this host",
            hint=f"run `{invocation.command('doctor')}` and install again",
        )
    probe = computeproof.has_probe(image) and ctx.compute_size != computeproof.OFF
    form = composeproof.form_for(attempt.name)
    outcome = composeproof.run_compose(compose, image, form, uuids, probe=probe)
    ctx.compose = [outcome.as_dict()]
    if not outcome.ok:
        raise composeproof.compose_failure(outcome)
    what = "computed on" if outcome.compute_ok else "saw"
    return f"; the compose service (driver: {form}) {what} {', '.join(outcome.seen_uuids)}"
