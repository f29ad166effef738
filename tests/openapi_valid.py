"""openapi.yaml is a valid OpenAPI 3.1 document (checked by openapi-spec-validator)."""
import sys

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

doc, _ = read_from_filename(sys.argv[1] if len(sys.argv) > 1 else "openapi.yaml")
validate(doc)
print("openapi.yaml: valid OpenAPI", doc["openapi"])
