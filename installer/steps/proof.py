"""The proof step: containers see the host's GPUs, by every access path Docker offers.

Where Docker reads CDI specs (or one is there already), the spec is generated
again when it is missing or stale, recorded before nvidia-ctk writes it.
"""

from __future__ import annotations

from installer import containers
from installer.errors import GpubundleError
from installer.gpu import find_nvidia_smi, read_driver_facts
from installer.installplan import PROOF, proof_images
from installer.record import InstallRecord
from installer.steps import StepContext, compute


def cdi_spec(
    ctx: StepContext, record: InstallRecord, driver_version: str
) -> tuple[InstallRecord, str]:
    """Generate the CDI spec where install should; the record and a note for the report."""
    path = ctx.host.cdi_spec
    try:
        text: str | None = path.read_text(errors="replace")
    except OSError:
        text = None
    ours = str(path) in record.cdi_specs_created
    reason = containers.regeneration_reason(text, ours, driver_version)
    if not reason:
        return record, f"CDI spec {path} kept (current)"
    if text is None or ours:  # a stale spec of someone else's is replaced, not claimed
        # Write-ahead: recorded before nvidia-ctk writes it, so uninstall finds it.
        specs = tuple(dict.fromkeys((*record.cdi_specs_created, str(path))))
        record = ctx.intend(record, PROOF, cdi_specs_created=specs)
    try:
        spec, path_note = containers.generate_cdi_spec("nvidia-ctk", path, find_nvidia_smi())
    except GpubundleError as err:
        # The CDI attempt still runs and shows what Docker says; this says why.
        return record, f"CDI spec not generated ({reason}): {err.message}; " + "; ".join(
            err.details[-3:]
        )
    note = f"CDI spec {spec.path} generated ({reason}), mounts nvidia-smi at "
    note += spec.nvidia_smi or "?"
    return record, note + (f"; {path_note}" if path_note else "")


def run(ctx: StepContext, record: InstallRecord) -> tuple[InstallRecord, str]:
    driver = read_driver_facts(proc_modules=ctx.host.proc / "modules")
    uuids = driver.uuids
    support = containers.docker_support(containers.docker_info())
    problem = containers.rule_problem(ctx.proof_rule, support)
    if problem:
        raise GpubundleError(
            f"cannot prove the GPUs as asked: {problem}",
            hint="run install again with --proof default (the --gpus forms decide), "
            'or enable CDI in Docker 25+ ("features": {"cdi": true} in daemon.json)',
        )
    cdi_note = ""
    # Where Docker has no CDI, a spec that is there (for containerd, podman) is still
    # kept current; a new one is written only for a Docker that reads it.
    if support.cdi or ctx.host.cdi_spec.exists():
        record, cdi_note = cdi_spec(ctx, record, driver.version)
    # The builtin verification image first, then any registry images.
    images = [i.ref for i in proof_images(ctx.manifest)]
    results = containers.prove_images(images, uuids, support, rule=ctx.proof_rule)
    ctx.console.table(
        ["image", "path", "result", "evidence"],
        containers.proof_rows(results),
        title="GPU proof",
    )
    ctx.proof = [r.as_dict() for r in results]
    failure = containers.proof_failure(results, uuids, driver.problem)
    if failure is not None:
        if cdi_note:
            failure.details = (*failure.details, cdi_note)
        raise failure
    detail = containers.proof_summary(results, uuids)
    detail += f"; {cdi_note}" if cdi_note else ""
    detail += "; " + compute.run(ctx, results, uuids)
    return record, detail + compute.run_compose(ctx, results, uuids)
