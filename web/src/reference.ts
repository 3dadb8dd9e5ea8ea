// The API reference page (/api-reference): Swagger UI rendering the
// server's own OpenAPI description (/api/openapi.json), with the UI's API
// token (if one is set) sent by "Try it out".
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-es-bundle.js";
import "swagger-ui-dist/swagger-ui.css";
import { token } from "./api";

SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  requestInterceptor: (request: { headers: Record<string, string> }) => {
    const t = token();
    if (t && !request.headers.Authorization) request.headers.Authorization = `Bearer ${t}`;
    return request;
  },
});
