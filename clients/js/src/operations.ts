// The operations of graphql/operations/, verbatim (a test in tests/test_node_clients.py keeps them equal).

export const Notifications = /* GraphQL */ `
query Notifications($first: Int = 20, $after: String, $filter: NotificationFilter) {
  notifications(first: $first, after: $after, filter: $filter) {
    edges {
      cursor
      node {
        id
        userId
        type
        title
        message
        data
        read
        readAt
        createdAt
        sequence
        seen
        seenAt
        archived
        archivedAt
        category
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
    unreadCount
    unseenCount
    feedCursor
  }
}
`;

export const NotificationEvents = /* GraphQL */ `
subscription NotificationEvents($after: String) {
  notificationEvents(after: $after) {
    kind
    cursor
    sequence
    unreadCount
    unseenCount
    category
    categoryCounts {
      category
      unreadCount
      unseenCount
    }
    upToSequence
    count
    notification {
      id
      userId
      type
      title
      message
      data
      read
      readAt
      createdAt
      sequence
      seen
      seenAt
      archived
      archivedAt
      category
    }
  }
}
`;

export const MarkNotificationRead = /* GraphQL */ `
mutation MarkNotificationRead($id: ID!) {
  markNotificationRead(id: $id) {
    id
    read
    readAt
  }
}
`;

export const MarkAllNotificationsRead = /* GraphQL */ `
mutation MarkAllNotificationsRead($upTo: String) {
  markAllNotificationsRead(upTo: $upTo) {
    count
    unreadCount
    cursor
  }
}
`;

export const UnreadCount = /* GraphQL */ `
query UnreadCount {
  unreadCount
}
`;
