"""Agency adapters (REST, SOAP, XML) behind one protocol; they arrive with the delivery issue."""
