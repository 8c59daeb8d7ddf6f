"""Test helpers shipped with the package: an OpenAI-compatible fake server with fault injection."""

from selfinstruct.testing.fake_server import FakeOpenAIServer, FaultPlan, Responder, echo_responder

__all__ = ["FakeOpenAIServer", "FaultPlan", "Responder", "echo_responder"]
