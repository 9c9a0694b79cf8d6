#!/usr/bin/env python3
"""Offline validation of the render-farm examples against their schedulers' real schemas.

  validate.py check [JOBS_FARM_DIR]   the shipped examples (default: jobs/farm of this checkout)
  validate.py selftest                broken copies of them must fail, each with the expected message

Kubernetes: kubernetes-validate's strict OpenAPI schemas (unknown fields are errors) for the versions in
K8S_VERSIONS: the oldest where everything the manifest uses is GA (backoffLimitPerIndex, podFailurePolicy's
FailIndex: 1.33) and the newest the package ships.
AWS Batch: botocore's own `batch` service model and its ParamValidator on the input shapes of RegisterJobDefinition
(aws-batch-job-definition.json) and SubmitJob (aws-batch-submit.json), as `aws batch ... --cli-input-json` sends
them; plus the model's enums (ParamValidator skips them) and the rules its documentation states in prose
(environment names must not start with AWS_BATCH; an array job has 2 to 10,000 children; 1 to 10 attempts).
Then videoforge's own contract: the shard count each example gives equals the number of tasks, exit 75 is
retried and 3/4 are not.
"""
import copy
import json
import os
import sys

import botocore.session
import botocore.validate
import kubernetes_validate
import yaml

K8S_VERSIONS = ["1.33.0", "1.37.0"]


def k8s_problems(docs):
    problems = []
    for doc in docs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(top)"
                problems.append(f"kubernetes {version}: {where}: {e.message}")
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.VersionNotSupportedError) as e:
                problems.append(f"kubernetes {version}: {e}")
    for doc in docs:
        if doc.get("kind") != "Job":
            continue
        spec = doc.get("spec", {})
        env = {e.get("name"): e.get("value") for c in spec.get("template", {}).get("spec", {}).get("containers", [])
               for e in c.get("env", [])}
        if spec.get("completionMode") != "Indexed":
            problems.append("videoforge: the Job must be Indexed (JOB_COMPLETION_INDEX is the shard index)")
        if str(env.get("VIDEOFORGE_SHARD_COUNT")) != str(spec.get("completions")):
            problems.append(f"videoforge: VIDEOFORGE_SHARD_COUNT={env.get('VIDEOFORGE_SHARD_COUNT')!r} must equal "
                            f"completions={spec.get('completions')!r} (a Job does not tell its pods)")
        no_retry = set()
        for rule in spec.get("podFailurePolicy", {}).get("rules", []):
            codes = rule.get("onExitCodes", {})
            if rule.get("action") in ("FailIndex", "FailJob") and codes.get("operator") == "In":
                no_retry.update(codes.get("values", []))
        if not {3, 4} <= no_retry or 75 in no_retry:
            problems.append(f"videoforge: exit codes 3 and 4 must fail the index and 75 must be retried "
                            f"(not retried now: {sorted(no_retry)})")
    return problems


def batch_model():
    return botocore.session.get_session().get_service_model("batch")


def enum_problems(value, shape, path):
    """The model's enums, which ParamValidator does not check."""
    problems = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k in shape.members:
                problems += enum_problems(v, shape.members[k], f"{path}.{k}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, v in enumerate(value):
            problems += enum_problems(v, shape.member, f"{path}[{i}]")
    elif shape.type_name == "string" and getattr(shape, "enum", None) and value not in shape.enum:
        problems.append(f"{path}: {value!r} is not one of {', '.join(shape.enum)}")
    return problems


def environments(value, path="", found=None):
    """Every `environment` list in a request, wherever the shape nests it."""
    found = [] if found is None else found
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "environment" and isinstance(v, list):
                found.append((f"{path}.{k}", v))
            environments(v, f"{path}.{k}", found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            environments(v, f"{path}[{i}]", found)
    return found


def batch_problems(operation, params):
    model = batch_model()
    shape = model.operation_model(operation).input_shape
    problems = []
    report = botocore.validate.ParamValidator().validate(params, shape)
    if report.has_errors():
        problems += [f"{operation}: {line.strip()}" for line in report.generate_report().splitlines() if line.strip()]
    problems += [f"{operation}: {p}" for p in enum_problems(params, shape, "")]
    for path, env in environments(params):
        for var in env:
            if str(var.get("name", "")).startswith("AWS_BATCH"):
                problems.append(f"{operation}: {path}: {var.get('name')}: environment variables cannot start with "
                                f"AWS_BATCH (reserved for the variables Batch sets; the batch model says so)")
    size = params.get("arrayProperties", {}).get("size")
    if isinstance(size, int) and not 2 <= size <= 10000:
        problems.append(f"{operation}: .arrayProperties.size: {size}: an array job has 2 to 10,000 children")
    attempts = params.get("retryStrategy", {}).get("attempts")
    if isinstance(attempts, int) and not 1 <= attempts <= 10:
        problems.append(f"{operation}: .retryStrategy.attempts: {attempts}: 1 to 10")
    return problems


def batch_contract(definition, submit):
    problems = []
    if submit.get("jobDefinition") != definition.get("jobDefinitionName"):
        problems.append("videoforge: the submission must name the job definition "
                        f"({submit.get('jobDefinition')!r} vs {definition.get('jobDefinitionName')!r})")
    actions = {}
    for rule in definition.get("retryStrategy", {}).get("evaluateOnExit", []):
        actions[rule.get("onExitCode")] = rule.get("action")
    if actions.get("75") != "RETRY" or actions.get("3") != "EXIT" or actions.get("4") != "EXIT":
        problems.append(f"videoforge: exit 75 must RETRY and 3, 4 must EXIT (evaluateOnExit: {actions})")
    env = {e["name"]: e["value"] for e in submit.get("containerOverrides", {}).get("environment", [])}
    env.update({e["name"]: e["value"] for e in definition.get("containerProperties", {}).get("environment", [])})
    count = env.get("VIDEOFORGE_SHARD_COUNT")
    size = submit.get("arrayProperties", {}).get("size")
    if count is not None and str(count) != str(size):
        problems.append(f"videoforge: VIDEOFORGE_SHARD_COUNT={count} must equal arrayProperties.size={size}")
    return problems


def load(path):
    with open(path) as f:
        if path.endswith((".yaml", ".yml")):
            return [d for d in yaml.safe_load_all(f) if d]
        return json.load(f)


def check_all(k8s, definition, submit):
    """Every problem of the three examples, as (file, problem)."""
    out = [("k8s-indexed-job.yaml", p) for p in k8s_problems(k8s)]
    out += [("aws-batch-job-definition.json", p) for p in batch_problems("RegisterJobDefinition", definition)]
    out += [("aws-batch-submit.json", p) for p in batch_problems("SubmitJob", submit)]
    out += [("aws-batch-*.json", p) for p in batch_contract(definition, submit)]
    return out


def examples(farm):
    return (load(os.path.join(farm, "k8s-indexed-job.yaml")),
            load(os.path.join(farm, "aws-batch-job-definition.json")),
            load(os.path.join(farm, "aws-batch-submit.json")))


def check(farm):
    problems = check_all(*examples(farm))
    for f, p in problems:
        print(f"{f}: {p}", file=sys.stderr)
    print(f"farm examples: kubernetes {', '.join(K8S_VERSIONS)} (strict, kubernetes-validate "
          f"{kubernetes_validate.__version__ if hasattr(kubernetes_validate, '__version__') else ''}), "
          f"AWS Batch (botocore {botocore.__version__}): {len(problems)} problem(s)")
    return 1 if problems else 0


def selftest(farm):
    """Each broken copy must be rejected with a message containing the expected text."""
    k8s, definition, submit = examples(farm)

    def broken(edit):
        k, d, s = copy.deepcopy(k8s), copy.deepcopy(definition), copy.deepcopy(submit)
        edit(k[0], d, s)
        return check_all(k, d, s)

    cases = [
        ("k8s unknown field", lambda k, d, s: k["spec"].update(completionz=8), "Additional properties are not allowed"),
        ("k8s wrong type", lambda k, d, s: k["spec"].update(completions="8"), "'8' is not of type 'integer'"),
        ("k8s count differs", lambda k, d, s: k["spec"].update(completions=6, parallelism=6),
         "VIDEOFORGE_SHARD_COUNT='8' must equal completions=6"),
        ("k8s retries exit 3", lambda k, d, s: k["spec"].update(podFailurePolicy={"rules": []}),
         "exit codes 3 and 4 must fail the index"),
        ("batch unknown key", lambda k, d, s: d["containerProperties"].update(gpus=1), "Unknown parameter in"),
        ("batch missing name", lambda k, d, s: d.pop("jobDefinitionName"), "Missing required parameter in input"),
        ("batch bad enum", lambda k, d, s: d["containerProperties"]["resourceRequirements"][0].update(type="TPU"),
         "'TPU' is not one of GPU, VCPU, MEMORY"),
        ("batch wrong type", lambda k, d, s: d["retryStrategy"].update(attempts="3"), "Invalid type for parameter"),
        ("batch reserved env", lambda k, d, s: s.update(containerOverrides={"environment": [
            {"name": "AWS_BATCH_JOB_ARRAY_SIZE", "value": "8"}]}), "cannot start with AWS_BATCH"),
        ("batch array of one", lambda k, d, s: s["arrayProperties"].update(size=1), "2 to 10,000 children"),
        ("batch missing queue", lambda k, d, s: s.pop("jobQueue"), "Missing required parameter"),
        ("batch 75 not retried", lambda k, d, s: d["retryStrategy"].update(evaluateOnExit=[]),
         "exit 75 must RETRY"),
    ]
    failures = 0
    for name, edit, want in cases:
        problems = broken(edit)
        hit = [p for _, p in problems if want in p]
        print(f"  {'ok  ' if hit else 'MISS'} {name}: {hit[0] if hit else problems}")
        failures += not hit
    print(f"selftest: {len(cases) - failures} of {len(cases)} broken copies rejected as expected")
    return 1 if failures else 0


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    farm = argv[1] if len(argv) > 1 else os.path.join(here, "..", "..", "jobs", "farm")
    if argv[:1] == ["check"]:
        return check(farm)
    if argv[:1] == ["selftest"]:
        return selftest(farm)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
