// Mounts GraphiQL on this server's /graphql (queries, mutations) and /graphql/ws
// (subscriptions, graphql-transport-ws). Signed in with the browser session cookie, or with
// an `Authorization: Bearer <token>` header set in GraphiQL's Headers tab.
(function () {
  var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  var fetcher = GraphiQL.createFetcher({
    url: window.location.origin + '/graphql',
    subscriptionUrl: scheme + '//' + window.location.host + '/graphql/ws',
  });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
    })
  );
})();
