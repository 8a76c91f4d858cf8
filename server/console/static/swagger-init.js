// Starts Swagger UI on the API docs page (/schema). A static file, so that the page runs no inline script;
// the OpenAPI document's address comes from the container's data-spec-url attribute.
"use strict";
(() => {
  const container = document.getElementById("swagger-container");
  window.ui = SwaggerUIBundle({
    url: container.dataset.specUrl,
    dom_id: "#swagger-container",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,  // never ask a public validator: offline networks, and no document leaves the server
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  });
})();
