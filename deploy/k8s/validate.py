"""Checks rendered manifests offline: Kubernetes kinds against the official
schemas bundled by kubernetes-validate (strict: no unknown field), KEDA
ScaledObjects against deploy/k8s/schemas. Exits non-zero naming what fails.

    PYTHONPATH=.tools/python python3 deploy/k8s/validate.py FILE.yaml
"""

import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.33.0"
SCHEMAS = pathlib.Path(__file__).parent / "schemas"


def main(path: str) -> int:
    documents = [doc for doc in yaml.safe_load_all(pathlib.Path(path).read_text()) if doc]
    scaled_object = json.loads((SCHEMAS / "scaledobject-keda-v1alpha1.json").read_text())
    failures = 0
    for doc in documents:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            if doc.get("apiVersion") == "keda.sh/v1alpha1" and doc.get("kind") == "ScaledObject":
                jsonschema.validate(doc, scaled_object)
            else:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            print(f"valid: {name}")
        except Exception as error:  # every failure is reported, then counted
            failures += 1
            print(f"invalid: {name}: {error}", file=sys.stderr)
    return 1 if failures or not documents else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
