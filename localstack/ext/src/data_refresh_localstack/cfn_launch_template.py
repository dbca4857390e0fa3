"""CloudFormation resource provider for AWS::EC2::LaunchTemplate.

LocalStack's community CloudFormation has no provider for this type and silently fakes it
(CREATE_COMPLETE, nothing created). This one creates a real launch template through the
EC2 API, so the project's template deploys unchanged and RunInstances can use it.
An update writes a new, complete version and makes it the default (a version made with
SourceVersion would not inherit the source's data here).
"""

from __future__ import annotations

import localstack.services.cloudformation.provider_utils as util
from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

SCHEMA = {
    "typeName": "AWS::EC2::LaunchTemplate",
    "primaryIdentifier": ["/properties/LaunchTemplateId"],  # Ref returns lt-...
    "readOnlyProperties": ["/properties/LaunchTemplateId", "/properties/LatestVersionNumber",
                           "/properties/DefaultVersionNumber"],
    "createOnlyProperties": ["/properties/LaunchTemplateName"],
    "properties": {},
}


class LaunchTemplateProvider(ResourceProvider):
    TYPE = "AWS::EC2::LaunchTemplate"
    SCHEMA = SCHEMA

    def create(self, request: ResourceRequest) -> ProgressEvent:
        model = request.desired_state
        ec2 = request.aws_client_factory.ec2
        name = model.get("LaunchTemplateName") or util.generate_default_name(
            request.stack_name, request.logical_resource_id)
        extra = util.select_attributes(model, ["TagSpecifications", "VersionDescription"])
        template = ec2.create_launch_template(
            LaunchTemplateName=name, LaunchTemplateData=model.get("LaunchTemplateData", {}),
            **extra)["LaunchTemplate"]
        model.update(LaunchTemplateName=name, LaunchTemplateId=template["LaunchTemplateId"],
                     LatestVersionNumber=str(template["LatestVersionNumber"]),
                     DefaultVersionNumber=str(template["DefaultVersionNumber"]))
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def update(self, request: ResourceRequest) -> ProgressEvent:
        model, previous = request.desired_state, request.previous_state
        ec2 = request.aws_client_factory.ec2
        template_id = previous["LaunchTemplateId"]
        extra = util.select_attributes(model, ["VersionDescription"])
        version = ec2.create_launch_template_version(
            LaunchTemplateId=template_id, LaunchTemplateData=model.get("LaunchTemplateData", {}),
            **extra)["LaunchTemplateVersion"]["VersionNumber"]
        ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=str(version))
        model.update(LaunchTemplateName=previous["LaunchTemplateName"],
                     LaunchTemplateId=template_id, LatestVersionNumber=str(version),
                     DefaultVersionNumber=str(version))
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def delete(self, request: ResourceRequest) -> ProgressEvent:
        model = request.desired_state
        ec2 = request.aws_client_factory.ec2
        try:
            ec2.delete_launch_template(LaunchTemplateId=model["LaunchTemplateId"])
        except ec2.exceptions.ClientError as error:
            if "NotFound" not in str(error):
                raise
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def read(self, request: ResourceRequest) -> ProgressEvent:
        model = request.desired_state
        ec2 = request.aws_client_factory.ec2
        templates = ec2.describe_launch_templates(
            LaunchTemplateIds=[model["LaunchTemplateId"]])["LaunchTemplates"]
        template = templates[0]
        model.update(LaunchTemplateName=template["LaunchTemplateName"],
                     LatestVersionNumber=str(template["LatestVersionNumber"]),
                     DefaultVersionNumber=str(template["DefaultVersionNumber"]))
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


class LaunchTemplateProviderPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::EC2::LaunchTemplate"

    def __init__(self):
        self.factory: type[ResourceProvider] | None = None

    def load(self):
        self.factory = LaunchTemplateProvider
