#!/usr/bin/env bash

export OS_AUTH_TYPE=v3applicationcredential
export OS_AUTH_URL=https://keystone.rc.nectar.org.au:5000/v3/
export OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME="Melbourne"
export OS_INTERFACE=public
export OS_APPLICATION_CREDENTIAL_ID=4f1c0a2b3d4e5f60718293a4b5c6d7e8
export OS_APPLICATION_CREDENTIAL_SECRET=Zm9vYmFyU2VjcmV0VmFsdWVOb3RSZWFsMTIz
