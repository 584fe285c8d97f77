#!/bin/sh
# azd postprovision hook (azure.yaml): prints the steps that make a fresh deployment detect. It changes nothing.
# azd runs it after `azd provision` / `azd up` with the environment's values (the deployment outputs of
# infra/main.bicep, AZURE_RESOURCE_GROUP, AZURE_ENV_NAME) in the environment. A value that is missing is printed
# as <NAME>, so the hook never fails a deployment that succeeded.
set -u

value() {
  eval "v=\${$1:-}"
  if [ -n "$v" ]; then printf '%s' "$v"; else printf '<%s>' "$1"; fi
}

KV=$(value KEY_VAULT_NAME)
ACCOUNT_SECRET=$(value MAXMIND_ACCOUNT_ID_SECRET_NAME)
LICENSE_SECRET=$(value MAXMIND_LICENSE_KEY_SECRET_NAME)
APP=$(value FUNCTION_APP_NAME)
RG=$(value AZURE_RESOURCE_GROUP)

cat <<STEPS

unusual-city is provisioned in resource group $RG. Four steps before it detects (README.md, "Deploying to Azure"):

1. Set the MaxMind secrets (a free GeoLite2 account and licence key: https://www.maxmind.com/en/geolite2/signup):
     az keyvault secret set --vault-name $KV --name $ACCOUNT_SECRET --value <account id> -o none
     az keyvault secret set --vault-name $KV --name $LICENSE_SECRET --value <licence key> -o none
     azd provision     # makes the app resolve the two Key Vault references now

2. Run the first GeoIP refresh (until then every run fails with "No GeoIP database"):
     MASTER_KEY="\$(az functionapp keys list -g $RG -n $APP --query masterKey -o tsv)"
     curl -fsS -X POST "https://$APP.azurewebsites.net/admin/functions/refreshGeoIpDatabase" \\
       -H "x-functions-key: \$MASTER_KEY" -H 'Content-Type: application/json' -d '{}'
   and the first Service Tags refresh (Azure addresses become 'Azure <region>'; a 403 names the role to grant):
     curl -fsS -X POST "https://$APP.azurewebsites.net/admin/functions/refreshServiceTags" \\
       -H "x-functions-key: \$MASTER_KEY" -H 'Content-Type: application/json' -d '{}'

3. Run the bootstrap: it learns the last 30 days of AzureActivity, without it the first days' scores are damped:
     curl -fsS -X POST "https://$APP.azurewebsites.net/api/bootstrapBaselines?days=30" -H "x-functions-key: \$MASTER_KEY"
   or from this machine (your identity needs the roles of grantDeployerDataAccess):
     set -a; eval "\$(azd env get-values)"; set +a
     npm exec --no -- unusual-city bootstrap

4. Check the deployment (one line per check, and the fix for each failure):
     npm exec --no -- unusual-city doctor

STEPS
if [ "$(value DEPLOYER_DATA_ACCESS)" != "true" ]; then
  cat <<NOTE
Running bootstrap or doctor from this machine needs your identity to hold Log Analytics Reader (workspace),
Storage Table Data Contributor and Storage Blob Data Reader (storage account) and Monitoring Reader (resource
group): set them yourself, or  azd env set UNUSUAL_CITY_GRANT_DEPLOYER_DATA_ACCESS true  and  azd provision.

NOTE
fi
exit 0
