# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redfish error responses: ``{"error": {"code", "message", "@Message.ExtendedInfo"}}`` (DSP0266, "Error responses").

The messages are those of DMTF's Base message registry (version :data:`BASE`); a refusal is raised
as :class:`RedfishError` anywhere under a request and turned into its response in one place (the app).
"""

from __future__ import annotations

BASE = "Base.1.15.0"
# id: (HTTP status when used alone, severity, message with %1.. arguments, resolution)
MESSAGES = {
    "MalformedJSON": (400, "Critical", "The request body submitted was malformed JSON and could not be parsed by "
                      "the receiving service.", "Ensure that the request body is valid JSON and resubmit the request."),
    "ActionParameterNotSupported": (400, "Warning", "The parameter %1 for the action %2 is not supported on the "
                                    "target resource.", "Remove the parameter supplied and resubmit the request."),
    "ActionParameterValueNotInList": (400, "Warning", "The value '%1' for the parameter %2 in the action %3 is not "
                                      "in the list of acceptable values.", "Choose a value from the enumeration list "
                                      "that the implementation can support and resubmit the request."),
    "ActionParameterMissing": (400, "Critical", "The action %1 requires the parameter %2 to be present in the "
                               "request body.", "Supply the action with the required parameter in the request body."),
    "ActionNotSupported": (400, "Critical", "The action %1 is not supported by the resource.",
                           "The action supplied cannot be resubmitted to the implementation."),
    "ActionParameterValueConflict": (409, "Warning", "The parameter '%1' with the requested value of '%2' does not "
                                     "meet the constraints of the implementation.", "No resolution is required."),
    "PropertyValueFormatError": (400, "Warning", "The value '%1' for the property %2 is of a different format than "
                                 "the property can accept.", "Correct the value for the property in the request "
                                 "body and resubmit the request."),
    "NoOperation": (400, "Warning", "The request body submitted contain no data to act upon and no changes to the "
                    "resource took place.", "Add properties in the JSON object and resubmit the request."),
    "PropertyValueNotInList": (400, "Warning", "The value '%1' for the property %2 is not in the list of acceptable "
                               "values.", "Choose a value from the enumeration list that the implementation can "
                               "support and resubmit the request."),
    "PropertyValueTypeError": (400, "Warning", "The value '%1' for the property %2 is of a different type than the "
                               "property can accept.", "Correct the value for the property in the request body and "
                               "resubmit the request."),
    "PropertyUnknown": (400, "Warning", "The property %1 is not in the list of valid properties for the resource.",
                        "Remove the unknown property from the request body and resubmit the request."),
    "PropertyNotWritable": (400, "Warning", "The property %1 is a read only property and cannot be assigned a value.",
                            "Remove the property from the request body and resubmit the request."),
    "PropertyMissing": (400, "Warning", "The property %1 is a required property and must be included in the request.",
                        "Ensure that the property is in the request body and has a valid value."),
    "PreconditionFailed": (412, "Critical", "The ETag supplied did not match the ETag required to change this "
                           "resource.", "Try the operation again using the appropriate ETag."),
    "ResourceMissingAtURI": (404, "Critical", "The resource at the URI '%1' was not found.",
                             "Place a valid resource at the URI or correct the URI and resubmit the request."),
    "OperationNotAllowed": (405, "Critical", "The HTTP method is not allowed on this resource.", "None."),
    "InsufficientPrivilege": (403, "Critical", "There are insufficient privileges for the account or credentials "
                              "associated with the current session to perform the requested operation.",
                              "Either abandon the operation or change the associated access rights and resubmit "
                              "the request if the operation failed."),
    "NoValidSession": (401, "Critical", "There is no valid session established with the implementation.",
                       "Establish a session before attempting any operations."),
    "ResourceInUse": (409, "Warning", "The change to the requested resource failed because the resource is in use "
                      "or in transition.", "Remove the condition and resubmit the request if the operation failed."),
    "OperationFailed": (500, "Warning", "An error occurred internal to the service as part of the overall request.  "
                        "Partial results may have been returned.", "Resubmit the request.  If the problem persists, "
                        "consider resetting the service or provider."),
    "GeneralError": (400, "Critical", "A general error has occurred.  See Resolution for information on how to "
                     "resolve the error, or @Message.ExtendedInfo if Resolution is not provided.", "None."),
    "InternalError": (500, "Critical", "The request failed due to an internal service error.  The service is still "
                      "operational.", "Resubmit the request.  If the problem persists, consider resetting the "
                      "service."),
    "Success": (200, "OK", "The request completed successfully.", "None"),
    "Created": (201, "OK", "The resource has been created successfully.", "None."),
}


def message(message_id, *args, resolution=None):
    """One ``@Message.ExtendedInfo`` entry of the Base registry."""
    _status, severity, text, default_resolution = MESSAGES[message_id]
    for number, arg in enumerate(args, 1):
        text = text.replace("%%%d" % number, str(arg))
    return {
        "@odata.type": "#Message.v1_1_1.Message",
        "MessageId": "%s.%s" % (BASE, message_id),
        "Message": text,
        "MessageArgs": [str(arg) for arg in args],
        "Severity": severity,
        "MessageSeverity": severity,
        "Resolution": resolution or default_resolution,
    }


class RedfishError(Exception):
    """A refusal: its HTTP status, the Base message id and arguments, and optionally extra headers (Allow).

    ``detail``: what the service knows beyond the registry's words (which slot, which bus), put in
    the top-level ``message`` and the entry's Resolution so a client's log says why.
    """

    def __init__(self, message_id, *args, status=None, detail=None, headers=None):
        super().__init__(detail or message_id)
        self.message_id = message_id
        self.args_ = args
        self.status = status or MESSAGES[message_id][0]
        self.detail = detail
        self.headers = dict(headers or {})

    def body(self):
        entry = message(self.message_id, *self.args_, resolution=self.detail)
        return {"error": {"code": "%s.%s" % (BASE, self.message_id),
                          "message": self.detail or entry["Message"],
                          "@Message.ExtendedInfo": [entry]}}
