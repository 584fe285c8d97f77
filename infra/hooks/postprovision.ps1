# azd postprovision hook on Windows (azure.yaml): the same steps as postprovision.sh, for PowerShell. It changes
# nothing. azd runs it after `azd provision` / `azd up` with the environment's values (the deployment outputs of
# infra/main.bicep, AZURE_RESOURCE_GROUP, AZURE_ENV_NAME) in the environment. A value that is missing is printed
# as <NAME>, so the hook never fails a deployment that succeeded.

function Get-Value([string] $Name) {
  $v = [Environment]::GetEnvironmentVariable($Name)
  if ([string]::IsNullOrEmpty($v)) { "<$Name>" } else { $v }
}

$KV = Get-Value 'KEY_VAULT_NAME'
$AccountSecret = Get-Value 'MAXMIND_ACCOUNT_ID_SECRET_NAME'
$LicenseSecret = Get-Value 'MAXMIND_LICENSE_KEY_SECRET_NAME'
$App = Get-Value 'FUNCTION_APP_NAME'
$RG = Get-Value 'AZURE_RESOURCE_GROUP'

Write-Host @"

unusual-city is provisioned in resource group $RG. Four steps before it detects (README.md, "Deploying to Azure"):

1. Set the MaxMind secrets (a free GeoLite2 account and licence key: https://www.maxmind.com/en/geolite2/signup):
     az keyvault secret set --vault-name $KV --name $AccountSecret --value <account id> -o none
     az keyvault secret set --vault-name $KV --name $LicenseSecret --value <licence key> -o none
     azd provision     # makes the app resolve the two Key Vault references now

2. Run the first GeoIP refresh (until then every run fails with "No GeoIP database"):
     `$MASTER_KEY = az functionapp keys list -g $RG -n $App --query masterKey -o tsv
     Invoke-RestMethod -Method Post -Uri "https://$App.azurewebsites.net/admin/functions/refreshGeoIpDatabase" ``
       -Headers @{ 'x-functions-key' = `$MASTER_KEY } -ContentType 'application/json' -Body '{}'
   and the first Service Tags refresh (Azure addresses become 'Azure <region>'; a 403 names the role to grant):
     Invoke-RestMethod -Method Post -Uri "https://$App.azurewebsites.net/admin/functions/refreshServiceTags" ``
       -Headers @{ 'x-functions-key' = `$MASTER_KEY } -ContentType 'application/json' -Body '{}'

3. Run the bootstrap: it learns the last 30 days of AzureActivity, without it the first days' scores are damped:
     Invoke-RestMethod -Method Post -Uri "https://$App.azurewebsites.net/api/bootstrapBaselines?days=30" -Headers @{ 'x-functions-key' = `$MASTER_KEY }
   or from this machine (your identity needs the roles of grantDeployerDataAccess):
     azd env get-values | ForEach-Object { `$k, `$v = `$_ -split '=', 2; Set-Item "env:`$k" `$v.Trim('"') }
     npm exec --no -- unusual-city bootstrap

4. Check the deployment (one line per check, and the fix for each failure):
     npm exec --no -- unusual-city doctor

"@

if ((Get-Value 'DEPLOYER_DATA_ACCESS') -ne 'true') {
  Write-Host @"
Running bootstrap or doctor from this machine needs your identity to hold Log Analytics Reader (workspace),
Storage Table Data Contributor and Storage Blob Data Reader (storage account) and Monitoring Reader (resource
group): set them yourself, or  azd env set UNUSUAL_CITY_GRANT_DEPLOYER_DATA_ACCESS true  and  azd provision.

"@
}
exit 0
